"""The public API is exactly what the contract names."""

import convostore


def test_all_is_the_contract() -> None:
    assert convostore.__all__ == [
        "BotConfig",
        "BotStore",
        "ChannelInfo",
        "ChatSession",
        "ConfigError",
        "ConvostoreError",
        "DatabaseLockedError",
        "DatabaseUnavailableError",
        "InvalidInput",
        "LegacyImportError",
        "MessageRevision",
        "OperationError",
        "ReadOnlyDatabaseError",
        "SchemaError",
        "SearchHit",
        "StorageError",
        "StoredMessage",
        "load_config",
        "load_configs",
        "to_chat_messages",
    ]
    assert convostore.__all__ == sorted(convostore.__all__)
    for name in convostore.__all__:
        assert getattr(convostore, name) is not None


def test_errors_share_one_root() -> None:
    assert issubclass(convostore.ConfigError, convostore.ConvostoreError)
    assert issubclass(convostore.StorageError, convostore.ConvostoreError)
    assert issubclass(convostore.InvalidInput, convostore.ConvostoreError)
    assert issubclass(convostore.InvalidInput, ValueError)


def test_library_does_not_configure_logging() -> None:
    import logging

    handlers = logging.getLogger("convostore").handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]


def test_every_error_class_is_exported() -> None:
    import inspect

    from convostore import errors

    classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.ConvostoreError)
    }
    assert classes <= set(convostore.__all__)
    assert set(errors.__all__) == classes
    for name in classes:
        assert getattr(convostore, name) is getattr(errors, name)
