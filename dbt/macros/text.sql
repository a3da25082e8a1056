{#- Text without the whitespace around it: spaces, tabs, line breaks, vertical tabs and form
    feeds (DuckDB's one-argument trim() removes spaces only, so '\tann@example.com\n' would
    keep its tab and newline and match nobody). What every model trims: ids, addresses,
    statuses, error messages; so staging, the rejection rules and normalized_email agree on
    what is blank, and the chaos oracle strips the same characters (identity_oracle.WHITESPACE). -#}
{% macro trimmed_text(expression) -%}
    trim({{ expression }}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13))
{%- endmacro %}
