{#- A lean `incremental` materialization for DuckDB: fewer statements per micro-batch.

    dbt-duckdb's own materialization sends 6-8 statements per incremental run of a model (create
    the temp table, describe the target (and the temp table, for on_schema_change: fail), BEGIN,
    the strategy SQL, one per post-hook, COMMIT), each with dbt's fixed per-query cost (events,
    logging, cursor).
    On a normal incremental run this one sends BEGIN, one `main` statement and COMMIT: the temp
    table, the schema check, the strategy SQL, the in-transaction hooks and the drop of the temp
    table are one SQL batch, in one transaction. `insert ... by name` needs no column list, so
    the target is never described.

    Every other case (first build, full refresh, view in the way, python models, other
    strategies or on_schema_change modes, grants, persisted docs, contracts, MotherDuck, list
    keys or incremental predicates) calls dbt-duckdb's own materialization, unchanged, through
    the `dbt` namespace (where dbt puts the adapter packages' macros), so it behaves exactly as
    without this file. The materialization keeps the name `incremental`, so `is_incremental()`
    works as before. -#}
{% materialization incremental, adapter='duckdb', supported_languages=['sql', 'python'] -%}

  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set strategy = config.get('incremental_strategy') or 'default' -%}
  {%- set unique_key = config.get('unique_key') -%}
  {%- set on_schema_change = incremental_validate_on_schema_change(config.get('on_schema_change'), default='ignore') -%}
  {%- set contract = config.get('contract') -%}
  {%- set lean = model['language'] == 'sql'
      and existing_relation is not none and existing_relation.is_table
      and not should_full_refresh()
      and strategy in ('append', 'delete+insert', 'replace_keys')
      and on_schema_change in ('ignore', 'fail')
      and (unique_key is none or unique_key is string)
      and not (strategy == 'replace_keys' and unique_key is none)
      and not (config.get('incremental_predicates') or config.get('predicates'))
      and not config.get('grants')
      and not config.persist_relation_docs() and not config.persist_column_docs()
      and not (contract and contract.enforced)
      and not adapter.is_motherduck() -%}
  {%- if not lean -%}
    {{ return(dbt.materialization_incremental_duckdb()) }}
  {%- endif -%}

  {%- set target = this.incorporate(type='table') -%}
  {#- A connection-local temp table, named as dbt-duckdb names it (timestamped). -#}
  {%- set tmp = make_temp_relation(target) -%}
  {%- set target_columns -%}
    select lower(column_name) as name, data_type from duckdb_columns()
    where lower(database_name) = lower('{{ target.database }}')
      and lower(schema_name) = lower('{{ target.schema }}')
      and lower(table_name) = lower('{{ target.identifier }}')
  {%- endset -%}
  {%- set tmp_columns -%}
    select lower(column_name) as name, data_type from duckdb_columns()
    where database_name = 'temp' and lower(table_name) = lower('{{ tmp.identifier }}')
  {%- endset -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}

  {#- auto_begin: dbt sends BEGIN first and knows a transaction is open, so a failing statement
      in the batch is rolled back (a BEGIN inside the batch would leave the connection in an
      aborted transaction that dbt does not know about). -#}
  {% call statement('main') -%}
    {{ customer360.lean_hooks_sql(pre_hooks) }}
    {{ create_table_as(True, tmp, compiled_code) }};

    {% if on_schema_change == 'fail' -%}
    {#- What dbt's `fail` checks (column names and types, both ways), without a round trip:
        error() aborts the batch, and the transaction is rolled back. -#}
    select case when count(*) > 0 then error(
        'The source and target schemas on this incremental model are out of sync! '
        || '{{ this }} (on_schema_change: fail): '
        || string_agg(side || ' ' || name || ' ' || data_type, ', ' order by name, side)
        || '. Re-run the model with --full-refresh, or change on_schema_change.')
    end
    from (
        (select 'model has', * from ({{ tmp_columns }} except {{ target_columns }}))
        union all
        (select 'table has', * from ({{ target_columns }} except {{ tmp_columns }}))
    ) as differences(side, name, data_type);
    {%- set select_columns = '*' %}
    {%- else -%}
    {#- `ignore`: insert only the columns the target has (target columns the model lacks get
        nulls), like dbt's insert with the target's column list. The list is read into a
        variable in the same batch, so it is a constant when the insert is bound. -#}
    set variable c360_target_columns = (select list(name) from ({{ target_columns }}));
    {%- set select_columns = "columns(lambda c: list_contains(getvariable('c360_target_columns'), lower(c)))" %}
    {%- endif %}

    {% if strategy in ('delete+insert', 'replace_keys') and unique_key -%}
    delete from {{ target }} where ({{ unique_key }}) in (select ({{ unique_key }}) from {{ tmp }});
    {% endif -%}
    insert into {{ target }} by name
    select {{ select_columns }} from {{ tmp }}
    {%- if strategy == 'replace_keys' %} where not _tombstone{% endif %};

    {{ customer360.lean_hooks_sql(post_hooks) }}
    drop table {{ tmp }};
  {%- endcall %}

  {% do adapter.commit() %}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target]}) }}

{%- endmaterialization %}

{#- The in-transaction hooks, rendered as dbt's run_hooks renders them, as statements of the
    batch (a newline before each `;` so a trailing `--` comment cannot swallow it). -#}
{% macro lean_hooks_sql(hooks) -%}
  {%- for hook in hooks | selectattr('transaction', 'equalto', true) -%}
    {%- set rendered = render(hook.get('sql')) | trim -%}
    {%- if rendered | length > 0 %}
    {{ rendered }}
    ;
    {%- endif -%}
  {%- endfor -%}
{%- endmacro %}
