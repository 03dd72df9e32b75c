from __future__ import annotations

from controller.ivr.nodes import Context, Next, Node, Param
from controller.ivr.nodes._input import ask
from controller.lookup import is_phone_number


class CallbackNode(Node):
    """Offer a callback: 1 = call me back on this number, 2 = enter another; books it for `queue` (README
    "Callbacks": the ACD queues it when due, within the queue's business hours on a working day).

    With `when_prompt`, the caller picks the time: 1 = as soon as possible, 2 = the next working morning;
    else `when` decides (asap, next_morning), or `due_minutes` when neither is given."""

    type = "callback"
    waits = True
    params = {
        "prompt": Param("prompts", default="如需回拨您的来电号码，请按1；如需回拨其他号码，请按2。"),
        "number_prompt": Param("prompts", default="请输入回拨号码，以井号键结束。"),
        "done_prompt": Param("prompts", default="我们将尽快回电，谢谢。"),
        "due_minutes": Param("number", default=60.0, doc="the callback is due this many minutes later"),
        "queue": Param("str", default="", doc="the queue that calls back (none: the first queue)"),
        "when": Param("enum", default="", choices=("", "asap", "next_morning"),
                      doc="asap | next_morning (none: due_minutes)"),
        "when_prompt": Param("prompts", default=None,
                             doc="ask the caller: 1 = as soon as possible, 2 = the next working morning"),
        "timeout": Param("number", positive=True, default=5.0),
        "retries": Param("int", default=2),
        "next": Param("node", doc="after the callback was booked (none: the flow ends)"),
        "declined": Param("node", doc="the caller did not take the offer (none: the flow ends)"),
    }

    def assigns(self) -> set[str]:
        return {"callback_number", "callback_due_at"}

    async def run(self, ctx: Context) -> Next:
        for _ in range(self["retries"]):
            choice = await ask(ctx, self, self["prompt"], timeout=self["timeout"])
            number = None
            if choice.digits == "1" and is_phone_number(ctx.port.caller):
                number = ctx.port.caller
            elif choice.digits in ("1", "2"):
                entered = await ask(ctx, self, self["number_prompt"], max_digits=20, min_digits=5, terminator="#",
                                    timeout=self["timeout"])
                number = entered.digits if len(entered.digits) >= 5 else None
            if number:
                due = ctx.port.clock.now() + 60 * self["due_minutes"]
                when = self["when"]
                if self["when_prompt"]:
                    picked = await ask(ctx, self, self["when_prompt"], timeout=self["timeout"])
                    when = {"1": "asap", "2": "next_morning"}.get(picked.digits, "asap")
                ctx.set("callback_number", number)
                ctx.set("callback_due_at", due)
                ctx.emit("ivr.input_collected", node=self.id, variable="callback_number", value=number)
                await ctx.port.save_record("callback", {"number": number, "due_at": due, "flow": ctx.flow_id,
                                                        "queue": self["queue"], "when": when})
                await self.play(ctx, self["done_prompt"])
                return self["next"]  # type: ignore[no-any-return]
        return self["declined"]  # type: ignore[no-any-return]
