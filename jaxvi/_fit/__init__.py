"""The in-memory wrapper: validate, plan blocks, reduce on devices, solve in chunks."""
