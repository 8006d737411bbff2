"""Stripe's errors cross into kombify as BillingError/ConflictError, never carrying a secret."""

from __future__ import annotations

import pytest
import stripe

from kombify.billing.stripe_client import request_nonce, translated
from kombify.errors import BillingError, ConflictError


def test_a_key_or_signing_secret_in_stripes_message_is_redacted() -> None:
    said = "Invalid API Key provided: sk_live_abcdef123456; also whsec_0123456789abcdef"
    with pytest.raises(BillingError) as raised:
        with translated("listing invoices"):
            raise stripe.InvalidRequestError(said, param="customer", code="bad", http_status=400)

    message = str(raised.value)
    assert message.startswith("listing invoices: Stripe answered 400 bad: ")
    assert "sk_live_" not in message and "whsec_" not in message
    assert message.count("[redacted]") == 2
    assert isinstance(raised.value.__cause__, stripe.InvalidRequestError)


def test_a_refused_key_and_an_unreachable_stripe_say_so_without_details() -> None:
    with pytest.raises(
        BillingError, match=r"Stripe refused the API key \(KOMBIFY_STRIPE_API_KEY\)$"
    ):
        with translated("creating the Stripe customer"):
            raise stripe.AuthenticationError("Invalid API Key provided: sk_test_****wxyz")
    with pytest.raises(BillingError, match="Stripe could not be reached$"):
        with translated("creating the Stripe customer"):
            raise stripe.APIConnectionError("connection refused to api.stripe.com")


def test_a_reused_idempotency_key_is_a_conflict() -> None:
    with pytest.raises(ConflictError, match="Idempotency-Key"):
        with translated("creating the Checkout Session"):
            raise stripe.IdempotencyError("Keys for idempotent requests can only be used …")


def test_the_request_nonce_follows_the_clients_key() -> None:
    assert request_nonce("click-1") == request_nonce("click-1") != request_nonce("click-2")
    assert request_nonce(None) != request_nonce(None)
    assert "click" not in request_nonce("click-1") and len(request_nonce("x" * 255)) == 32
