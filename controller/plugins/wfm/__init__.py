"""Workforce management: forecasts and staffing plans from the store's history, agents' schedules, adherence."""
