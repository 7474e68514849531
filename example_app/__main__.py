"""`python -m example_app [--host 127.0.0.1] [--port 8000]`: serve the example with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .app import DASHBOARD_PATH, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("activejob").setLevel(logging.INFO)  # see jobs start, retry and finish
    app = create_app()
    url = f"http://{args.host}:{args.port}/"
    print(f"activejob example: open {url}", flush=True)
    if app.state.dashboard:
        print(f"dashboard:         {url.rstrip('/')}{DASHBOARD_PATH}/", flush=True)
    print(f"database:          {app.state.queue.database_url}   (Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
