{#- A constant table as a select: `rows` is a list of dicts (e.g. a project var), `columns` the
    keys to take, in order. Strings are quoted (quotes doubled), none is null, numbers are as
    written. Compiles to the same SQL every time the project does. -#}
{% macro values_table(rows, columns, alias) -%}
    select *
    from (
        values
        {%- for row in rows %}
            ({% for column in columns -%}
                {%- set value = row[column] -%}
                {%- if value is none -%}null
                {%- elif value is string -%}'{{ value | replace("'", "''") }}'
                {%- else -%}{{ value }}
                {%- endif -%}
                {%- if not loop.last %}, {% endif -%}
            {%- endfor %}){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as {{ alias }} ({{ columns | join(', ') }})
{%- endmacro %}
