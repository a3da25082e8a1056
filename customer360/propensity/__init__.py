"""Purchase propensity: a small logistic regression of "orders in the next 30 days", trained
nightly on the warehouse's history (`model.py`), scored by dbt (customer_propensity)."""
