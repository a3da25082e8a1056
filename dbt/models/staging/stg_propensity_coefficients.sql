{{
    config(
        materialized='view',
        pre_hook=propensity_coefficients_table(),
    )
}}

{#- The purchase-propensity models the nightly `propensity_model` asset trained
    (customer360/propensity/): one row per model version and feature. The greatest
    model_version is the current model. The source table is created empty by the pre-hook when
    no model has been trained yet, so the marts build without one (and score nobody). -#}

with source as (
    select * from {{ source('ml', 'propensity_coefficients') }}
),

typed as (
    select
        -- ids
        model_version,
        feature,

        -- numbers
        cast(intercept as double) as intercept,
        cast(mean as double) as mean,
        cast(scale as double) as scale,
        cast(coefficient as double) as coefficient,

        -- timestamps
        trained_at,
        reference_at
    from source
)

select * from typed
