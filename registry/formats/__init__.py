"""The registry's date formats (FORMAT_MODULE_PATH): ISO 8601 in every language, never DD/MM or MM/DD."""
