"""The content pack (topics, hotlines, intents) and the interface catalogs. Imports no other part."""
