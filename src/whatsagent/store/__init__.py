"""Where whatsagent keeps everything (`whatsagent.store.database`)."""


def sqlite_file(database_url: str) -> str:
    """The file a ``sqlite:///path?options`` URL names (``:memory:`` as written); "" when it names none."""
    return database_url.split("///", 1)[1].split("?", 1)[0] if "///" in database_url else ""
