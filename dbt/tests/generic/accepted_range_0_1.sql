{#- The column is between 0 and 1 (a probability); nulls pass. -#}
{% test accepted_range_0_1(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}
