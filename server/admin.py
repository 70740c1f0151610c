"""``skillshare admin grant|revoke <email>``: make the first administrator
(or take the role away) from the command line; written to the audit log."""

from __future__ import annotations

from loguru import logger

from .auth.accounts import normalise_email
from .clock import Clock
from .config import Settings
from .storage.audit import AuditStore
from .storage.database import open_database
from .storage.fields import FieldCrypto
from .storage.users import UserStore

CLI_ACTIONS = {"grant": "admin", "revoke": "user"}


async def set_role_by_email(
    *, users: UserStore, audit: AuditStore, email: str, role: str, clock: Clock
) -> dict | None:
    """The user's document after the change, or None if no such account."""
    user = await users.find_by_email(normalise_email(email))
    if user is None:
        return None
    now = clock.now()
    await users.set_role(user["_id"], role, now=now)
    await audit.record(
        action="user.role_change", actor_id=None, target=user["_id"], ip=None,
        request_id=None, at=now,
        details={"previous": user.get("role", "user"), "role": role, "via": "cli"},
    )
    return {**user, "role": role}


async def run_admin(settings: Settings, *, action: str, email: str) -> bool:
    async with open_database(mongo_url=settings.mongo_url, db_name=settings.mongo_db,
                             data_dir=settings.data_dir) as db:
        fields = FieldCrypto(settings.data_keys())
        user = await set_role_by_email(
            users=UserStore(db, fields), audit=AuditStore(db, fields), email=email,
            role=CLI_ACTIONS[action], clock=Clock(),
        )
    if user is None:
        logger.error("no account with the email {}", email)
        return False
    logger.info("{} is now {}; the role applies from their next sign-in", user["_id"],
                user["role"])
    return True
