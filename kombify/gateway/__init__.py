"""The gateway's protections, in process: rate limits, security headers, CORS, request logs."""
