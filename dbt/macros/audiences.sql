{#- The audiences defined in dbt/models/marts/audience_definitions.yml (`meta.audiences` of the
    model audience_definitions): the one reviewed file. Read from dbt's graph when models run
    (an empty list while dbt parses). Each is checked here, so a bad definition fails the build
    naming it: `name` (lower case letters, digits, _), `description`, `condition` (a SQL
    boolean over the columns of marts.customer_360 and `today`, the UTC date of the
    evaluation; no clock or random function of its own, or a full refresh could disagree with
    the incremental membership), `channel` (email: only customers with granted email consent;
    none: no consent needed). -#}
{% macro audience_definitions() -%}
    {%- if not execute -%}
        {{- return([]) -}}
    {%- endif -%}
    {%- set node = graph.nodes.get('model.customer360.audience_definitions') -%}
    {%- set audiences = (node.config.meta or {}).get('audiences', []) if node else [] -%}
    {%- set seen = [] -%}
    {%- set clock_or_random = '(?i)\\b(' ~ (nondeterministic_functions() | join('|')) ~ ')\\s*\\(|\\b(' ~ (clock_keywords() | join('|')) ~ ')\\b' -%}
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
        {%- set reads_a_clock = modules.re.search(clock_or_random, condition) -%}
        {%- if not condition.strip() or ';' in condition or reads_a_clock -%}
            {{ exceptions.raise_compiler_error("audience " ~ name ~ ": condition must be one SQL boolean over customer_360's columns and `today`, with no clock or random function of its own (" ~ (reads_a_clock.group(0) if reads_a_clock else "empty or several statements") ~ "; audience_definitions.yml)") }}
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

{#- DuckDB functions whose value depends on when or how often they are called, not only on their
    arguments: the time of the evaluation (now(), ...; age() with one argument is the age at the
    current time, so age() is refused, date_diff(..., today) says the same), random values, and
    sequences or session state. A condition calling one could give a full refresh other members
    than the incremental history. -#}
{% macro nondeterministic_functions() -%}
    {{- return([
        'now', 'today', 'current_date', 'current_time', 'current_timestamp', 'current_localtime',
        'current_localtimestamp', 'localtime', 'localtimestamp', 'get_current_time',
        'get_current_timestamp', 'transaction_timestamp', 'statement_timestamp', 'age',
        'random', 'setseed', 'uuid', 'gen_random_uuid', 'uuidv4', 'uuidv7', 'nextval', 'currval',
        'current_setting', 'getvariable', 'current_query', 'current_transaction_id', 'txid_current',
    ]) -}}
{%- endmacro %}

{#- The SQL keywords that read the clock without parentheses. -#}
{% macro clock_keywords() -%}
    {{- return(['current_date', 'current_time', 'current_timestamp', 'localtime', 'localtimestamp']) -}}
{%- endmacro %}
