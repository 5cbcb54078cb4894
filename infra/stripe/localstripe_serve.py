"""Runs localstripe (PyPI) for tests: bound to 127.0.0.1 only, state kept in
memory per process (localstripe otherwise binds every address and shares
/tmp/localstripe.pickle between all instances on the machine).

localstripe 1.15.10 has no `POST /v1/invoices/{id}/finalize` route, though
its invoices have the transition (`Invoice._finalize`: draft -> open,
`finalized_at` set); this exposes it, so a client can finalize as it would on
Stripe. Nothing else is added or changed.

usage: python localstripe_serve.py PORT
"""

import logging
import sys

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError


async def finalize_invoice(request: web.Request) -> web.Response:
    invoice = resources.Invoice._api_retrieve(request.match_info["id"])
    if invoice.status != "draft":
        raise UserError(400, "Invoice is not a draft")
    invoice._finalize()
    return server.json_response(invoice._export())


def main() -> None:
    port = int(sys.argv[1])
    # No shared pickle: each instance starts empty and forgets on exit.
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    server.app.router.add_post("/v1/invoices/{id}/finalize", finalize_invoice)
    logging.basicConfig(level=logging.INFO)
    web.run_app(server.app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
