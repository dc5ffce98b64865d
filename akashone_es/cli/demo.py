"""``akashone-es demo``: a short, realistic identity & access story, billing, the cloud."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import typer

from akashone_es.cli.billing import billing_story
from akashone_es.cli.cloud import cloud_story
from akashone_es.cli.common import State, catch_up_async, model_table, render_status

if TYPE_CHECKING:
    from akashone_es.storage import Storage

GSTIN_MAHARASHTRA = "27AAPFU0939F1ZV"
GSTIN_KARNATAKA = "29AAGCG6253J1Z8"


def _super_admin(storage: Storage, state: State) -> str:
    admin = storage.get_user_by_username("root")
    if admin is None:
        admin = storage.create_user({
            "username": "root", "email": "root@akashone.com", "password": "change-me-now",
            "account_type": "super_admin"})
        state.console.print(f"bootstrapped super admin [bold]root[/bold] ({admin.id})",
                            markup=True)
    else:
        state.console.print("super admin [bold]root[/bold] found from an earlier run: "
                            "the data survived the restart", markup=True)
    return str(admin.id)


def demo(ctx: typer.Context) -> None:
    """Bootstrap, a reseller, an invited team member, a custom role, grant and revoke."""
    from rich.text import Text  # noqa: PLC0415

    state: State = ctx.obj
    say = state.console.print
    with state.storage("demo", create=True) as storage:
        storage.initialize_default_roles()
        root_id = _super_admin(storage, state)
        run = len([o for o in storage.get_organizations() if o.kind == "reseller"]) + 1
        with storage.acting_as(actor_id=root_id, ip="10.0.0.1", user_agent="akashone-demo"):
            org = storage.create_organization({"name": f"Sharma Cloud Services #{run}",
                                               "kind": "reseller"})
            reseller = storage.create_user({
                "username": f"sharma{run}", "email": f"ops{run}@sharmacloud.in",
                "password": "reseller-secret", "gst_number": GSTIN_MAHARASHTRA,
                "account_type": "reseller", "organization_id": org.id})
            admin_role = next(r for r in storage.get_roles() if r.name == "Admin")
            storage.assign_role_to_user(reseller.id, admin_role.id, root_id)
        say(Text.assemble("reseller organization ", (org.name, "bold"),
                          f" with user {reseller.username}"))

        with storage.acting_as(actor_id=reseller.id, organization_id=org.id,
                               ip="203.0.113.7", user_agent="akashone-demo"):
            invite = storage.create_team_member({
                "email": f"priya{run}@sharmacloud.in", "organization_id": org.id,
                "invited_by": reseller.id})
            say(f"invited {invite.email} (token shown once, stored hashed)")
            priya = storage.accept_invitation({
                "token": invite.invitation_token, "username": f"priya{run}",
                "password": "priya-secret-1", "gst_number": GSTIN_KARNATAKA})
            say(f"{priya.username} accepted and joined as {priya.account_type}")
            role = storage.create_role({"name": "Billing Operator",
                                        "description": "Sees and settles invoices"})
            for key in ("billing.view", "billing.manage"):
                permission = storage.get_permission_by_key(key)
                assert permission is not None  # noqa: S101 - seeded above
                storage.assign_permission_to_role(role.id, permission.id)
            storage.assign_role_to_user(priya.id, role.id, reseller.id)
            say(Text.assemble(
                "granted custom role ", (role.name, "bold"), f" to {priya.username}: "
                f"billing.manage={storage.user_has_permission(priya.id, 'billing.manage')}"))
            storage.remove_role_from_user(priya.id, role.id)
            say(f"revoked it: billing.manage="
                f"{storage.user_has_permission(priya.id, 'billing.manage')}")

            table = partial(model_table, state.console)
            say(table(f"users of {org.name}", storage.get_users(),
                      ["username", "email", "account_type", "gst_number", "status"]))
            say(table("roles visible to the reseller", storage.get_roles(),
                      ["name", "is_system", "organization_id"]))
            say(table("team members", storage.get_team_members(org.id),
                      ["email", "status", "invited_at", "joined_at"]))
            say(table("activity log (newest first, UTC)", storage.get_recent_activities(12),
                      ["created_at", "username", "action", "resource_name", "ip_address"]))
        billing_story(storage, state.console, org.id, reseller.id, run)
        cloud_story(storage, state.console, org.id, run)
        # the activity log is an async projection (a follower applies it after the write):
        # catch it up here, as `akashone-es projections run` would, so no lag is left
        catch_up_async(storage)
        say("async projections caught up to what followers may read (`akashone-es "
            "projections run` keeps them current)")
        render_status(state.console, storage)  # says what holds followers back, if anything
        say(f"try: akashone-es history {priya.id}")
