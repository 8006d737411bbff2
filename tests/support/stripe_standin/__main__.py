"""``python -m tests.support.stripe_standin --port N``: serve the Stripe stand-in."""

from __future__ import annotations

import argparse

import uvicorn

from tests.support.stripe_standin.app import create_app
from tests.support.stripe_standin.webhooks import DEFAULT_RETRY_DELAYS

DEFAULT_KEY = "sk_test_standin_0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description="A local, stateful stand-in for Stripe's API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=DEFAULT_KEY, help="the one secret key accepted")
    parser.add_argument("--public-url", default=None, help="default: http://HOST:PORT")
    parser.add_argument(
        "--retry-delays",
        default=",".join(str(d) for d in DEFAULT_RETRY_DELAYS),
        help="seconds between webhook delivery attempts, comma separated",
    )
    args = parser.parse_args()
    delays = tuple(float(d) for d in args.retry_delays.split(",") if d.strip())
    public = args.public_url or f"http://{args.host}:{args.port}"
    app = create_app(api_key=args.api_key, public_url=public, retry_delays=delays)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
