from __future__ import annotations

import uuid

from controller.ivr.nodes import Context, Next, Node, Param


class FaxNode(Node):
    """Receive a fax: the call goes to the dialplan's ReceiveFAX; the document (PDF) becomes an item in a
    queue's inbox with the call's IVR data (README "Fax"). The flow ends here."""

    type = "fax"
    waits = True
    params = {
        "queue": Param("template", doc="whose inbox gets the fax; default: the last queue the call visited, else"
                                       " inbox.default_queue"),
    }

    def assigns(self) -> set[str]:
        return {"fax_id"}

    async def run(self, ctx: Context) -> Next:
        fax_id = uuid.uuid4().hex
        ctx.set("fax_id", fax_id)
        record = {"fax_id": fax_id, "flow": ctx.flow_id}
        if self["queue"]:
            record["queue"] = ctx.render(self["queue"])
        await ctx.port.save_record("fax", record)
        await ctx.port.receive_fax(fax_id)
        return None
