"""The edge's link to a USB GSM modem that receives Efento and BluLog temperature alert SMS.

`templates` turns an SMS text into a `ParsedSms` through named, configurable templates (regular
expressions with named groups, kept as TOML data; `default_templates.toml` ships the Efento,
BluLog and vendor-neutral ones in Polish and English) and flags its quality.
"""
from edge.links.gsm.templates import (
    DEFAULT_TEMPLATES,
    DEFAULT_ZONE,
    ParsedSms,
    Template,
    TemplateError,
    TemplateSet,
    default_templates,
    load_templates,
    templates_from_table,
)

__all__ = [
    "DEFAULT_TEMPLATES",
    "DEFAULT_ZONE",
    "ParsedSms",
    "Template",
    "TemplateError",
    "TemplateSet",
    "default_templates",
    "load_templates",
    "templates_from_table",
]
