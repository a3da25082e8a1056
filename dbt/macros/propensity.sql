{#- Pre-hook of customer_propensity: the table the nightly `propensity_model` asset writes
    (customer360/propensity/model.py) and the model reads, created empty if missing, so the
    marts build before any model has been trained (no model: no scores). One row per model
    version and feature; the greatest model_version is the current model. -#}
{% macro propensity_coefficients_table() -%}
    create schema if not exists ml;
    create table if not exists ml.propensity_coefficients (
        model_version varchar not null,
        trained_at timestamp not null,
        reference_at timestamp not null,
        intercept double not null,
        feature varchar not null,
        mean double not null,
        scale double not null,
        coefficient double not null,
        primary key (model_version, feature)
    )
{%- endmacro %}
