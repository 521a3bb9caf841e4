"""What every kubemini component shares: API errors, selectors, validation, object helpers."""
