{#- A model's custom schema is used as is (`marts.customer_360`, `staging.stg_users`), not
    prefixed with the target schema, so consumers read stable relation names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
