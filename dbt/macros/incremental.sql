{#- Incremental bookkeeping.

    Every landing row has a `batch_id` that increases per raw table (one extractor writes each
    table, in order). Staging rows keep `_batch_id`, the greatest batch id of the raw rows they
    reflect, and read only raw rows above `max(_batch_id)` of their own table. Per-customer
    models (the marts) record per source the greatest staging `_batch_id` seen when
    they ran (`intermediate.dbt_watermarks`) and recompute only customers touched by staging
    rows above it.

    Watermarks are scalar subqueries that DuckDB evaluates when the statement runs, never values
    read while dbt renders the model: a model compiles to the same SQL on every micro-batch, so
    the micro-batch can send dbt's statements again without dbt (customer360/pipeline/
    model_replay.py). DuckDB still prunes `batch_id > (select ...)` with zone maps on
    append-ordered tables. -#}

{#- The greatest value of `column` in this model's existing relation (rows matching `where`, if
    given), or -1 on a first or full build: a SQL expression. -#}
{% macro relation_max(column, where=none) -%}
    {%- if is_incremental() -%}
        (select coalesce(max({{ column }}), -1) from {{ this }}{% if where %} where {{ where }}{% endif %})
    {%- else -%}
        -1
    {%- endif -%}
{%- endmacro %}

{% macro batch_watermark(column='_batch_id') -%}
    {{- customer360.relation_max(column) -}}
{%- endmacro %}

{#- The staging inputs that can change a customer's mart rows. `ids` is the column with the
    customer ids a staging row touches when it changes: `_customer_ids` holds every customer a
    Mongo document or an email ever belonged to (so a delete, or an order moved to another
    customer, recomputes the previous customer too); a weblog event never changes owner.
    Weblogs are read through their per-customer rollup (int_weblog_rollup): its rows carry the
    greatest `_batch_id` and event time of the events they count. Identity stitching adds three
    (models/identity/): the anonymous events and logins of devices (`device_events`), anonymous
    events attributed to customers (`anonymous_weblogs`, whose `_customer_ids` are every
    customer who logged in on the device, so a re-attribution recomputes the customer who lost
    events too) and guest in-store orders matched by email (`guest_orders`, whose
    `_customer_ids` are every customer who ever had an address the order ever carried, so a
    corrected address, a user_id replacing it or a delete recomputes the previous holder). -#}
{% macro customer_sources() -%}
    {{- return({
        'users': {'model': 'stg_users', 'mark': '_users_batch_id', 'ids': '_customer_ids', 'source_at': '_cluster_at'},
        'online_orders': {'model': 'stg_online_orders', 'mark': '_online_orders_batch_id', 'ids': '_customer_ids', 'source_at': '_cluster_at'},
        'instore_orders': {'model': 'stg_instore_orders', 'mark': '_instore_orders_batch_id', 'ids': '_customer_ids', 'source_at': '_cluster_at'},
        'weblogs': {'model': 'int_weblog_rollup', 'mark': '_weblogs_batch_id', 'ids': 'customer_id', 'source_at': 'last_at'},
        'marketing_emails': {'model': 'stg_marketing_emails', 'mark': '_emails_batch_id', 'ids': '_customer_ids', 'source_at': 'last_updated_at'},
        'device_events': {'model': 'int_device_events', 'mark': '_device_events_batch_id', 'ids': 'customer_id', 'source_at': 'event_at'},
        'anonymous_weblogs': {'model': 'int_anonymous_weblog_rollup', 'mark': '_anonymous_weblogs_batch_id', 'ids': '_customer_ids', 'source_at': 'last_at'},
        'guest_orders': {'model': 'int_guest_order_owners', 'mark': '_guest_orders_batch_id', 'ids': '_customer_ids', 'source_at': '_cluster_at',
                         'parts': {'guest_orders_orders': '_orders_batch_id', 'guest_orders_users': '_users_batch_id'}},
    }) -}}
{%- endmacro %}

{#- The condition on a source's rows that are new since this model's watermark: `_batch_id` above
    it, or, for a source whose rows mix the batch ids of several landing tables (`parts`: a guest
    order's row is rewritten by an in-store change or by a users change, and its `_batch_id` is
    the greater of the two), any part's batch id above that part's own watermark. Batch ids
    increase per landing table only (sources land side by side: a users batch can be built after
    an in-store batch with a higher id), so the greater of two tables' ids can be below a
    watermark taken from the other table, and a row rewritten by that users batch would be
    missed. model_watermark is called without the project's namespace so that a unit test can
    override it (dbt's `overrides: macros:` replaces only unqualified calls). -#}
{% macro rows_since_watermark(name) -%}
    {%- set s = customer360.customer_sources()[name] -%}
    {%- if s.parts is defined -%}
        ({% for part, column in s.parts.items() %}{% if not loop.first %} or {% endif %}{{ column }} > {{ model_watermark(part) }}{% endfor %})
    {%- else -%}
        _batch_id > {{ model_watermark(name) }}
    {%- endif -%}
{%- endmacro %}

{#- The sources whose changes can change a customer's customer_360_base row: that model's
    inputs, and those of every model that reads its rows (customer_propensity, the audiences),
    so all recompute the same customers. -#}
{% macro customer_360_inputs() -%}
    {{- return(['users', 'online_orders', 'instore_orders', 'weblogs', 'marketing_emails', 'anonymous_weblogs', 'guest_orders']) -}}
{%- endmacro %}

{#- Where per-customer models keep their watermarks: one row per (model, source) with the
    greatest staging `_batch_id` of that source when the model last ran. It is written by the
    model's post-hook inside the model's transaction, so it moves with the model's rows; and it
    does not depend on which customers have rows (a mart without a row for a customer would
    otherwise hold back its watermark and re-read the same changes on every build). -#}
{% macro watermarks_relation() -%}
    {{- return(api.Relation.create(database=target.database, schema='intermediate', identifier='dbt_watermarks')) -}}
{%- endmacro %}

{#- This model's watermark for `source`: the greatest staging `_batch_id` of that source it has
    taken in (a SQL expression), -1 on a first or full build or before its first record. -#}
{% macro model_watermark(source_name) -%}
    {%- set relation = customer360.watermarks_relation() -%}
    {%- if is_incremental() and adapter.get_relation(relation.database, relation.schema, relation.identifier) is not none -%}
        (select coalesce(max(batch_id), -1) from {{ relation }}
         where model = '{{ this.identifier }}' and source = '{{ source_name }}')
    {%- else -%}
        -1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook (set with `post_hook=watermark_hook([...])`): record, for each source, the greatest
    staging `_batch_id` this run has seen. -#}
{% macro watermark_hook(source_names) -%}
    {{- return("{{ customer360.record_watermarks(" ~ source_names ~ ") }}") -}}
{%- endmacro %}

{% macro record_watermarks(source_names) -%}
    {%- set sources = customer360.customer_sources() -%}
    {%- set relation = customer360.watermarks_relation() -%}
    create table if not exists {{ relation }} (
        model varchar not null,
        source varchar not null,
        batch_id bigint not null,
        primary key (model, source)
    );
    delete from {{ relation }} where model = '{{ this.identifier }}';
    insert into {{ relation }} (model, source, batch_id)
    {%- for name in source_names %}
    {% if not loop.first %}union all{% endif %}
    select '{{ this.identifier }}', '{{ name }}', coalesce(max(_batch_id), -1)
    from {{ ref(sources[name].model) }}
    {%- if sources[name].parts is defined %}
    {%- for part, column in sources[name].parts.items() %}
    union all
    select '{{ this.identifier }}', '{{ part }}', coalesce(max({{ column }}), -1)
    from {{ ref(sources[name].model) }}
    {%- endfor %}
    {%- endif %}
    {%- endfor %}
{%- endmacro %}

{#- Select of the customer ids touched by staging changes not yet reflected in this model: one
    `customer_id` column, no nulls, no duplicates. On a full build it is never used. -#}
{% macro touched_customers(source_names) -%}
    {%- set sources = customer360.customer_sources() -%}
    select distinct customer_id from (
    {%- for name in source_names %}
        {%- set s = sources[name] %}
        {% if not loop.first %}union all{% endif %}
        select {% if s.ids == '_customer_ids' %}{{ customer360.unnest_array('_customer_ids') }}{% else %}customer_id{% endif %} as customer_id
        from {{ ref(s.model) }}
        where {{ customer360.rows_since_watermark(name) }}
    {%- endfor %}
    ) as touched
    where customer_id is not null
{%- endmacro %}

{#- The mark columns of `source_names` in int_customer_marks: per source its mark (the greatest
    staging `_batch_id`), its parts' marks (`_<part>_batch_id`) and its greatest source time
    (`_<source>_source_at`). -#}
{% macro customer_mark_columns(source_names) -%}
    {%- set sources = customer360.customer_sources() -%}
    {%- set columns = [] -%}
    {%- for name in source_names -%}
        {%- set s = sources[name] -%}
        {%- do columns.append(s.mark) -%}
        {%- for part in (s.parts or {}) -%}
            {%- do columns.append('_' ~ part ~ '_batch_id') -%}
        {%- endfor -%}
        {%- do columns.append('_' ~ name ~ '_source_at') -%}
    {%- endfor -%}
    {{- return(columns) -}}
{%- endmacro %}

{#- Select of the marks (customer_mark_columns) of the rows of source `name` that are new since
    this model's watermark (all of them on a full build), per customer a row counts for: its
    `customer_id` and, for a source whose rows keep `_customer_ids`, every customer it ever
    belonged to (a delete, or an order moved to another customer, still counts for the previous
    one). One row per customer. -#}
{% macro source_marks_since_watermark(name) -%}
    {%- set s = customer360.customer_sources()[name] -%}
    {%- set columns = ['_batch_id'] + (s.parts or {}).values() | list + [s.source_at] -%}
    select
        customer_id,
        max(_batch_id) as {{ s.mark }},
        {%- for part, column in (s.parts or {}).items() %}
        max({{ column }}) as _{{ part }}_batch_id,
        {%- endfor %}
        max({{ s.source_at }}) as _{{ name }}_source_at
    from (
        select customer_id, {{ columns | join(', ') }}
        from {{ ref(s.model) }}
        where {{ customer360.rows_since_watermark(name) }}
        {%- if s.ids == '_customer_ids' %}
        union all
        select {{ customer360.unnest_array('_customer_ids') }} as customer_id, {{ columns | join(', ') }}
        from {{ ref(s.model) }}
        where {{ customer360.rows_since_watermark(name) }}
        {%- endif %}
    ) as rows_of_customers
    where customer_id is not null
    group by customer_id
{%- endmacro %}

{#- The final select of a per-customer model. On an incremental build, every touched customer
    also gets a tombstone row (`_tombstone = true`, key only), so the `replace_keys` strategy
    deletes the rows of a customer that now has none (deleted customer, deleted orders). -#}
{% macro select_with_tombstones(final_cte, touched_cte, key='customer_id') -%}
    {%- if is_incremental() %}
    select *, false as _tombstone from {{ final_cte }}
    {{ customer360.union_all_by_name() }}
    select {{ key }}, true as _tombstone from {{ touched_cte }}
    {%- else %}
    select * from {{ final_cte }}
    {%- endif %}
{%- endmacro %}

{% macro union_all_by_name() -%}
    {{ return(adapter.dispatch('union_all_by_name', 'customer360')()) }}
{%- endmacro %}
{% macro default__union_all_by_name() -%}
    union all by name
{%- endmacro %}

{#- Custom incremental strategy `replace_keys`: delete every target row whose key (a column, or
    a list of columns) is in the new data (tombstones included), then insert the new rows that
    are not tombstones. Model config: `key_hash`, a column holding hash_of_key(key) of a one-column
    key, finds the rows to delete through it (see key_hash_candidates); `tombstones=false` for
    a model whose rows are never removed (no `_tombstone` column). -#}
{% macro get_incremental_replace_keys_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set key = unique_key if unique_key is string else unique_key | join(', ') -%}
    {%- set compared = key if unique_key is string else '(' ~ key ~ ')' -%}
    {%- set key_hash = config.get('key_hash') -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- if key_hash %}
    delete from {{ target }} where rowid in (
        with {{ customer360.key_hash_candidates(target, key, 'select ' ~ key ~ ' from ' ~ source, key_hash) }}
        select candidate_rowid from candidates where candidate_key in (select {{ key }} from {{ source }})
    );
    {%- else %}
    delete from {{ target }} where {{ compared }} in (select {{ key }} from {{ source }});
    {%- endif %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
    {%- if config.get('tombstones', true) %} where not _tombstone{% endif %}
{%- endmacro %}

{#- The stored rows of `relation` whose `key` is in `keys_select` (a select of one column) and,
    if given, that match `where` (a condition on the relation's columns), as a subquery to read
    from. DuckDB scans every column of every row before a semi-join drops the others, so there
    the matching row ids are found on the key (and `where`'s) columns alone first, and only
    those rows are read (about a third less CPU than the plain form on ~500k stored order
    changes, the lookup of stg_online_orders).

    `key_hash`: a column of `relation` holding hash_of_key(`key`) (see key_hash_candidates). -#}
{% macro rows_with_keys(relation, key, keys_select, where=none, key_hash=none) -%}
    {{ return(adapter.dispatch('rows_with_keys', 'customer360')(relation, key, keys_select, where, key_hash)) }}
{%- endmacro %}

{% macro default__rows_with_keys(relation, key, keys_select, where=none, key_hash=none) -%}
    (select * from {{ relation }} where {{ key }} in ({{ keys_select }}){% if where %} and ({{ where }}){% endif %})
{%- endmacro %}

{% macro duckdb__rows_with_keys(relation, key, keys_select, where=none, key_hash=none) -%}
    (
        {% if key_hash -%}
        with {{ customer360.key_hash_candidates(relation, key, keys_select, key_hash, where) }}
        {% endif -%}
        select * from {{ relation }}
        where rowid in (
            {% if key_hash -%}
            select candidate_rowid from candidates where candidate_key in ({{ keys_select }})
            {%- else -%}
            select rowid from {{ relation }}
            where {{ key }} in ({{ keys_select }}){% if where %} and ({{ where }}){% endif %}
            {%- endif %}
        )
    )
{%- endmacro %}

{#- The hash a `key_hash` column stores: MD5's, which no DuckDB upgrade changes (DuckDB's own
    hash() is not documented as stable across versions, and a stored hash that no longer
    matches would make a build miss the stored row). 16 bytes, still cheap to scan. -#}
{% macro hash_of_key(expression) -%}
    md5_number({{ expression }})
{%- endmacro %}

{#- A CTE `candidates` (candidate_rowid, candidate_key): the rows of `relation` whose
    `key_hash` column, which holds hash_of_key(`key`), is the hash of a key in `keys_select`. Hashing
    the few keys looked for and scanning one fixed-size column (16 bytes since it holds MD5's; 8
    when it was measured) finds a row among millions several times faster than comparing every
    stored string key (~6 vs ~19 ms for 500 of 1.1 M email ids); comparing the candidates' keys
    then drops a hash collision. Materialized, so DuckDB
    compares only the candidates' keys, not every stored one. -#}
{% macro key_hash_candidates(relation, key, keys_select, key_hash, where=none) -%}
    candidates as materialized (
        select rowid as candidate_rowid, {{ key }} as candidate_key
        from {{ relation }}
        where {{ key_hash }} in (
            select {{ customer360.hash_of_key('looked_for') }} from ({{ keys_select }}) as keys(looked_for)
        )
            {%- if where %} and ({{ where }}){% endif %}
    )
{%- endmacro %}
