"""The API key's own plan and usage: free to call, read by the credit governor before every group."""

from cryptolake.services.extract.base import Credits, Extractor, single
from cryptolake.services.extract.fields import INT, TS, columns

key_info = Extractor(
    name="key_info",
    path="/v1/key/info",
    items=single,
    credits=Credits(per_call=0),
    columns=columns(
        ("credit_limit_monthly", "plan.credit_limit_monthly", INT),
        ("credit_limit_monthly_reset_timestamp", "plan.credit_limit_monthly_reset_timestamp", TS),
        ("rate_limit_minute", "plan.rate_limit_minute", INT),
        ("minute_requests_made", "usage.current_minute.requests_made", INT),
        ("minute_requests_left", "usage.current_minute.requests_left", INT),
        ("day_credits_used", "usage.current_day.credits_used", INT),
        ("month_credits_used", "usage.current_month.credits_used", INT),
        ("month_credits_left", "usage.current_month.credits_left", INT),
    ),
)
