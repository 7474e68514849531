"""Found by the activejob app's autodiscovery (every installed app's jobs.py)."""

from pydantic import BaseModel

from activejob import BaseJob, job

from .models import Order


class ShipArgs(BaseModel):
    order_id: int


@job("ship_order", schema=ShipArgs)
class ShipOrder(BaseJob[ShipArgs]):
    def perform(self, args: ShipArgs) -> dict[str, object]:
        shipped = Order.objects.filter(pk=args.order_id).update(shipped=True)
        return {"order_id": args.order_id, "shipped": shipped}
