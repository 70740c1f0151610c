"""The skills marketplace: listings, requests, reviews, matches, moderation."""
