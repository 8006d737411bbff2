"""Plans, entitlements and billing through Stripe (off while no Stripe key is set)."""
