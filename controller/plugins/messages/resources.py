"""HTTP resources of the internal messages: send, list one's own, mark read, whom one may write to.

Only people logged in with a password (a session) send and read messages: they are addressed by user
name, and a token (an integration, a wallboard screen) is nobody's inbox.
"""

from __future__ import annotations

from aiohttp import web

from controller.http.list_query import list_query, list_window
from controller.http.openapi import body_of, operation
from controller.http.server import Identity, caller_of, json_error, roles
from controller.plugins.messages.services import MAX_TEXT, MessageRefused, MessageService

MESSAGE_ID = {"message_id": {"type": "string", "pattern": "^[0-9a-f]{32}(?!\\n)$"}}
USER_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}(?!\\n)$"}
MESSAGE = {"type": "object", "required": ["id", "sender", "recipient", "text", "sent_at", "read_at"],
           "properties": {"id": {"type": "string"}, "sender": {"type": "string"}, "recipient": {"type": "string"},
                          "text": {"type": "string"}, "sent_at": {"type": "number"},
                          "read_at": {"type": "number", "nullable": True}}}
MESSAGES = {"type": "object", "required": ["messages", "unread"],
            "properties": {"messages": {"type": "array", "items": MESSAGE}, "unread": {"type": "integer"}}}
SEND_BODY = {"type": "object", "additionalProperties": False, "required": ["to", "text"],
             "properties": {"to": {**USER_NAME, "description": "the recipient's user name"},
                            "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                                     "description": "plain text (pages show it as text, never as HTML)"}}}
CONTACTS = {"type": "object", "required": ["contacts"],
            "properties": {"contacts": {"type": "array", "items": {
                "type": "object", "required": ["name", "role", "agent_id"]}}}}
UNREAD_QUERY = {"unread": {"type": "string", "enum": ["true", "false"],
                           "description": "true: only the received messages not read yet"}}
NO_SESSION = {403: "not a user logged in with a password (tokens have no messages), or an agent writing to"
                   " another agent"}


def routes(messages: MessageService) -> list[web.RouteDef]:
    def user_of(request: web.Request) -> Identity:
        identity = caller_of(request)
        if not identity.is_session:
            raise web.HTTPForbidden(reason="messages are between users logged in with a password, not tokens")
        return identity

    def refused(exc: MessageRefused) -> web.Response:
        return json_error(exc.status, exc.message)

    @operation("Send an internal message to a user (an agent to supervisors and admins; a supervisor to anyone)",
               tag="messages", body=SEND_BODY, responses={201: MESSAGE},
               errors={**NO_SESSION, 404: "no user of that name", 409: "a message to yourself"})
    @roles("agent", "supervisor")
    async def send(request: web.Request) -> web.Response:
        identity = user_of(request)
        body = body_of(request)
        try:
            message = await messages.send(identity.name, identity.role, body["to"], body["text"])
        except MessageRefused as exc:
            return refused(exc)
        return web.json_response(message, status=201)

    @operation("This user's internal messages, newest first (received and sent), and how many are unread",
               tag="messages", query={**UNREAD_QUERY, **list_query(window=False)}, responses={200: MESSAGES},
               errors=NO_SESSION)
    @roles("agent", "supervisor")
    async def mine(request: web.Request) -> web.Response:
        identity = user_of(request)
        return web.json_response(await messages.of_user(identity.name,
                                                        unread_only=request.query.get("unread") == "true",
                                                        limit=list_window(request).limit),
                                 headers={"Cache-Control": "no-store"})

    @operation("Mark a received message read (its sender's page is told)", tag="messages", path=MESSAGE_ID,
               responses={200: MESSAGE},
               errors={**NO_SESSION, 404: "no message with that id for this user",
                       409: "the user sent it: only its recipient marks it read"})
    @roles("agent", "supervisor")
    async def read(request: web.Request) -> web.Response:
        identity = user_of(request)
        try:
            return web.json_response(await messages.mark_read(identity.name, request.match_info["message_id"]))
        except MessageRefused as exc:
            return refused(exc)

    @operation("The users this user may write to", tag="messages", responses={200: CONTACTS}, errors=NO_SESSION)
    @roles("agent", "supervisor")
    async def contacts(request: web.Request) -> web.Response:
        identity = user_of(request)
        return web.json_response({"contacts": messages.contacts(identity.name, identity.role)})

    return [web.post("/api/messages", send), web.get("/api/messages", mine),
            web.get("/api/messages/contacts", contacts),
            web.post("/api/messages/{message_id}/read", read)]
