{#- `amount` (an exact decimal, >= 0) divided by `count` (an integer > 0), rounded half up to
    cents, exactly: the division is done on whole millionths, since dividing decimals gives a
    float in DuckDB (100.01 / 2 = 50.005 could round either way). A decimal(38, 2), as wide as
    the totals it divides (money_type). -#}
{% macro divide_to_cents(amount, count) -%}
    {{ return(adapter.dispatch('divide_to_cents', 'customer360')(amount, count)) }}
{%- endmacro %}

{% macro default__divide_to_cents(amount, count) -%}
    cast(
        div(2 * round({{ amount }} * 1000000) + 10000 * ({{ count }}), 20000 * ({{ count }})) / 100.0
        as decimal(38, 2)
    )
{%- endmacro %}

{% macro duckdb__divide_to_cents(amount, count) -%}
    cast(
        cast(
            (2 * cast({{ amount }} * 1000000 as hugeint) + 10000 * ({{ count }}))
            // (20000 * ({{ count }}))
            as decimal(38, 0)
        ) * 0.01
        as decimal(38, 2)
    )
{%- endmacro %}

{#- The type of a customer's money totals (spend, sales amount, per channel and category): a
    line item's amount fits DECIMAL(28, 6) (staging rejects an order with a larger one,
    json_order_items_invalid), so a customer's sum of up to 10^10 of the largest fits this, and
    no valid order breaks a build by overflowing it. -#}
{% macro money_type() -%}
    decimal(38, 6)
{%- endmacro %}
