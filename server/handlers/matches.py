"""``/api/v1/matches``: people to swap skills with."""

from __future__ import annotations

from aiohttp import web

from ..http.auth import authenticate
from ..http.parsing import query
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import MATCHES
from ..schemas.common import PageQuery
from ..schemas.marketplace import MatchPage
from ..views.marketplace import match_view, page_view

routes = Routes()


@routes.get("/api/v1/matches", summary="People who match my skills", tags=["matches"],
            query=PageQuery, response=MatchPage, errors=[400])
async def list_matches(request: web.Request) -> web.Response:
    """People who offer what I want (`they_teach`) and/or want what I offer
    (`you_teach`), best first: a mutual swap scores highest. Offered skills
    are the profile's `skills_offered` plus the tags of one's listings;
    names compare case-, space- and punctuation-insensitively, ignoring a
    trailing version number ("Python 3" = "python"); synonyms from the
    skill vocabulary are the same skill ("Six-string" = "Guitar") and
    related skills count less; with SKILLSHARE_AI_PROVIDER=gemini, skills
    with similar embeddings match too and an item may carry `why`, a
    short explanation written once by Gemini. The ranking is made
    on the first page and kept 30 minutes for the caller: later pages read
    it, so profile edits meanwhile never repeat or skip anyone; an expired
    cursor is 400 `validation_error` on `cursor`."""
    claims = await authenticate(request)
    params = query(request, PageQuery)
    page = await request.app[MATCHES].matches(claims.user_id, limit=params.limit,
                                              cursor=params.cursor)
    return json_response(page_view(page, match_view))
