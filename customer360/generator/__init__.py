"""Demo data for customer360: a fashion brand's customers, orders, emails and web sessions.

- `seed(settings, customers, days, seed, now)` writes a consistent history into MongoDB
  (`users`, `online_orders`, `instore_orders`) and Kafka (`weblogs`, `marketing_emails`).
- `stream(settings, rate, duration, bad_share)` keeps producing live activity, changes,
  deletions and a share of bad records at a steady rate.
- `ensure_topics(settings)` creates the Kafka topics with 3 partitions.

`catalog` holds the fixed world (products, stores, pages, errors); `records` builds documents
and records of the source contract; `cli.register` adds `c360 seed` and `c360 stream`.

The functions live in their modules (`history.seed`, `stream.stream`, `topics.ensure_topics`);
nothing is re-exported here, so `customer360.generator.stream` stays the module.
"""
