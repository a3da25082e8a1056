{#- The form in which email addresses are compared when stitching identities: trimmed and
    lower-cased, so ' Alice@Example.COM ' and 'alice@example.com' are one address (the rule is
    documented in dbt/README.md, "Identity stitching"). Null for null or blank text. -#}
{% macro normalized_email(expression) -%}
    nullif(lower({{ customer360.trimmed_text(expression) }}), '')
{%- endmacro %}
