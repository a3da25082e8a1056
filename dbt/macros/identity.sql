{#- The form in which email addresses are compared when stitching identities: trimmed and
    lower-cased, so ' Alice@Example.COM ' and 'alice@example.com' are one address (the rule is
    documented in dbt/README.md, "Identity stitching"). Null for null or blank text. -#}
{% macro normalized_email(expression) -%}
    nullif(lower({{ customer360.trimmed_text(expression) }}), '')
{%- endmacro %}

{#- Text without the whitespace around it: spaces, tabs, line breaks, vertical tabs and form
    feeds (DuckDB's one-argument trim() removes spaces only, so '\tann@example.com\n' would
    keep its tab and newline and match nobody). Used for the addresses identity stitching
    compares, so that staging, the rejection rules and normalized_email agree on what is blank. -#}
{% macro trimmed_text(expression) -%}
    trim({{ expression }}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13))
{%- endmacro %}
