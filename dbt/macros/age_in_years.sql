{#- Whole years from `dob` to `as_of_date`: the year difference, less one when the birthday has
    not yet come that year. Someone born on 29 February turns a year older on 1 March in a year
    that has no 29 February. Null when either date is null, and when `dob` is after
    `as_of_date` (a typo such as 2099: no age, like a dob that does not parse). -#}
{% macro age_in_years(dob, as_of_date) -%}
    (
        case when {{ dob }} <= {{ as_of_date }} then
        extract(year from {{ as_of_date }}) - extract(year from {{ dob }})
        - case
            when extract(month from {{ as_of_date }}) * 100 + extract(day from {{ as_of_date }})
                < extract(month from {{ dob }}) * 100 + extract(day from {{ dob }})
            then 1
            else 0
        end
        end
    )
{%- endmacro %}

{#- The day a view is read, in UTC whatever the reader's session time zone (a BI tool's JDBC or
    ODBC connection has its own). A macro so unit tests can pin it (overrides: macros). -#}
{% macro reading_date() -%}
    cast(timezone('UTC', {{ dbt.current_timestamp() }}) as date)
{%- endmacro %}
