"""Money: prices, costs in integer micro-USD, holds, the ledger, subscriptions and Stripe.

Modules: ``pricing`` (prices and exact costs), ``wallet`` (holds over the ledger-derived balance),
``server_tools`` (the hold's bound for tools the upstream runs), ``limits`` (per-key budgets and token rates),
``keyring`` (key authentication and per-key RPM), ``plans`` (each tenant's tier, subscription status and
per-call caps, cached), ``quota`` (subscription tokens per rolling 24 hours), ``caps`` (per-call spending
caps), ``stripe_billing`` (Checkout and portal sessions) and ``stripe_events`` (webhook events to ledger
entries and subscription changes).

Billing rules (for the README)
------------------------------
* Every amount is an integer number of micro-USD (1 USD = 1,000,000). Prices are configured per model in
  USD per million tokens: input, output, cache read, cache write (5 minutes) and cache write (1 hour).
  A request's cost is the exact sum of its line items (uncached input, cache write 5m, cache write 1h,
  cache read, output), rounded up once to a whole micro-dollar. Every request row keeps its line items
  and the price it was charged at.
* The ledger is append-only (top-up, hold, settle, release, refund, adjustment; the database refuses
  updates and deletes) and every entry has an idempotency key. A balance is the sum of the ledger.
* Pay-per-token: before a request goes upstream it places a hold for its worst case (every input byte
  counted as a token at the dearest input rate, preset text included, 5,000 tokens per image and
  50,000 per document the upstream fetches by URL, plus ``max_tokens`` of output; when the client
  sets no ``max_tokens`` the model's configured ``max_tokens`` is sent upstream as the ceiling). A request is admitted only if the balance minus the holds in flight covers its hold, so
  under any concurrency the spend admitted never exceeds the balance. When the answer ends the hold is
  settled at the real cost computed from the upstream's usage; on failure it is released in full.
  Not enough credit: 402 in the client's protocol.
* Server tools (web search, web fetch, code execution) add uses x per-use fee and uses x an input bound to
  the hold (``server_tools``); the uses the upstream reports are billed as line items.
* Upstream usage that is not non-negative integers is billed at the hold, which always closes.
* Per-key budgets and token rates are held at admission like credit (``limits``).
* Streamed and non-streamed requests are charged by the same function from the same usage numbers, so
  the same usage costs exactly the same.
* A stream cut by the client is charged for what was generated: the input the upstream reported, and
  the output reported so far or, if larger, estimated from the text already sent (4 characters a token).
* Failed attempts are never billed: an attempt that errors, times out or sends nothing is released.
  With failover, only the attempt that answered is billed, once. A request that fails everywhere costs
  nothing. A stream that breaks after content reached the client is billed for that content.
* Per-call caps: a tenant may have a cap per call (for all models, or per model); a request whose
  worst case exceeds it is refused with 400 before anything is spent.
* Subscriptions: a tier (config ``[[tiers]]``) gives a monthly price, a number of tokens per rolling
  24 hours (input + output + cache read + cache write; 0 = unlimited) and the routes/models it covers.
  Subscription keys call only the tool routes (/claudecode, /cline, /cursor, /roocode), draw on the
  quota and never on credit; over the quota they get 429 with the time it frees up. Subscription access
  needs status active or trialing (an operator-assigned tier is active until removed); a failed renewal
  payment (past_due, unpaid), a cancelled subscription, or a period that ended more than a day ago
  without a renewal suspends it with 402 until Stripe reports it paid again. Pay-per-token keys may
  call every route (the tool routes included) and always pay from credit.
* Stripe: top-ups ($5 to $1,000) are credited only when Stripe reports the Checkout session paid, for
  the amount on Stripe's session object (never an amount the client asked for); each webhook event is
  applied once (its id is recorded in the same transaction as the credit); a refund reverses the
  refunded part of that top-up's credit (which can leave a negative balance, blocking further spend).
"""
