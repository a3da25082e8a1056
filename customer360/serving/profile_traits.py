"""The traits a profile shows: the columns of dbt's `customer_traits` mart (value, RFM segment,
lifecycle; their rules are in dbt/models/marts/customer_traits.yml), which the `customer_360`
view shows too. Named once for the API, the chaos oracle and the tests that read them."""

TRAIT_COLUMNS = (
    "lifetime_value",
    "average_order_value",
    "orders_last_30_days",
    "orders_last_90_days",
    "orders_last_365_days",
    "days_since_last_order",
    "first_order_date",
    "preferred_channel",
    "preferred_category",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "rfm_segment",
    "lifecycle_stage",
)
