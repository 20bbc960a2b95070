"""Provides commerce: server-side carts, all-or-nothing idempotent checkout, orders and sales."""
