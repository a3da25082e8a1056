{#- The page of a successful login: the `Website Login` event of customer_activity. -#}
{% macro login_page() -%}
    'login_success.html'
{%- endmacro %}
