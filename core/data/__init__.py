"""Preference data in one canonical form: readers for every file and hub format, the validated
:class:`~alignscope.data.preferences.PreferenceData`, the on-disk parse cache and the built-in demo set."""
