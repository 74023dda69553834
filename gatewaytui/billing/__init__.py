"""Money: prices, costs in integer micro-USD, holds and the ledger."""
