{#- The customers that exist: one row per customer id of a users document that is not deleted.
    Should two live documents carry the same id, the one changed last wins (then the larger
    document key). `where` restricts the stg_users rows read before they are ranked, so a
    model that needs a few customers reads only their documents (int_customers, a view, reads
    them all). -#}
{% macro current_customers(where=none) -%}
    select *
    from {{ ref('stg_users') }}
    where not is_deleted
        and customer_id is not null
        {% if where -%}
        and {{ where }}
        {%- endif %}
    qualify row_number() over (
        partition by customer_id order by _cluster_time desc, document_key desc
    ) = 1
{%- endmacro %}

{#- Whether `customer_id` is a customer that exists (a live users document has that id):
    cheaper than a join to int_customers, which ranks every document. -#}
{% macro customer_exists(customer_id) -%}
    {{ customer_id }} in (
        select customer_id from {{ ref('stg_users') }}
        where not is_deleted and customer_id is not null
    )
{%- endmacro %}
