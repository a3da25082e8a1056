{#- The audiences defined in dbt/models/marts/audience_definitions.yml (`meta.audiences` of the
    model audience_definitions): the one reviewed file. Read from dbt's graph when models run
    (an empty list while dbt parses). Each is checked here, so a bad definition fails the build
    naming it: `name` (lower case letters, digits, _), `description`, `condition` (a SQL
    boolean over the columns of marts.customer_360 and `today`, the UTC date of the
    evaluation; no clock function of its own, or a full refresh could disagree with the
    incremental membership), `channel` (email: only customers with granted email consent;
    none: no consent needed). -#}
{% macro audience_definitions() -%}
    {%- if not execute -%}
        {{- return([]) -}}
    {%- endif -%}
    {%- set node = graph.nodes.get('model.customer360.audience_definitions') -%}
    {%- set audiences = (node.config.meta or {}).get('audiences', []) if node else [] -%}
    {%- set seen = [] -%}
    {%- for audience in audiences -%}
        {%- set name = audience.get('name', '') -%}
        {%- if not modules.re.fullmatch('[a-z][a-z0-9_]{0,62}', name) -%}
            {{ exceptions.raise_compiler_error("audience name " ~ name ~ " must be lower case letters, digits and _ (audience_definitions.yml)") }}
        {%- endif -%}
        {%- if name in seen -%}
            {{ exceptions.raise_compiler_error("audience " ~ name ~ " is defined twice (audience_definitions.yml)") }}
        {%- endif -%}
        {%- do seen.append(name) -%}
        {%- if audience.get('channel') not in ['email', 'none'] -%}
            {{ exceptions.raise_compiler_error("audience " ~ name ~ ": channel must be email or none (audience_definitions.yml)") }}
        {%- endif -%}
        {%- set condition = audience.get('condition', '') | string -%}
        {%- if not condition.strip() or ';' in condition
            or modules.re.search('(?i)\\b(now|current_date|current_timestamp|today|get_current_timestamp)\\s*\\(|\\bcurrent_(date|timestamp)\\b', condition) -%}
            {{ exceptions.raise_compiler_error("audience " ~ name ~ ": condition must be one SQL boolean over customer_360's columns and `today`, with no clock function of its own (audience_definitions.yml)") }}
        {%- endif -%}
    {%- endfor -%}
    {{- return(audiences) -}}
{%- endmacro %}

{#- A number that changes whenever the definitions change (a compile-time constant, the same on
    every build of the same project): audience_changes re-evaluates every customer then. -#}
{% macro audience_definitions_version() -%}
    {%- set text = tojson(customer360.audience_definitions()) -%}
    {{- return(local_md5(text)[:12] | int(base=16)) -}}
{%- endmacro %}
