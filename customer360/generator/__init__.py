"""Demo data for customer360: a fashion brand's customers, orders, emails and web sessions.

- `seed(settings, customers, days, seed, now)` writes a consistent history into MongoDB
  (`users`, `online_orders`, `instore_orders`) and Kafka (`weblogs`, `marketing_emails`).
- `stream(settings, rate, duration, bad_share)` keeps producing live activity, changes,
  deletions and a share of bad records at a steady rate.
- `ensure_topics(settings)` creates the Kafka topics with 3 partitions.

`catalog` holds the fixed world (products, stores, pages, errors); `records` builds documents
and records of the source contract; `bad_records` the bad ones. The stream's parts: `event_mix`
(which kind of event next), `live_events` (making each event from the live state),
`pending_emails` (opens and clicks still to come, found in Kafka) and `stream` (the paced loop).
`cli.register` adds `c360 seed` and `c360 stream`.

The functions live in their modules (`history.seed`, `stream.stream`, `topics.ensure_topics`);
nothing is re-exported here, so `customer360.generator.stream` stays the module.
"""
