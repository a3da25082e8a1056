{{ config(materialized='view') }}

{#- A view so `age` is right on the day it is read, birthdays included, with no rebuild. -#}

select
    customer_id,
    first_name,
    last_name,
    email,
    gender,
    dob,
    {{ age_in_years('dob', reading_date()) }} as age,
    city,
    country
from {{ ref('int_customers') }}
