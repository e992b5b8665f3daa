"""Drop-in conversation memories for agent frameworks, over a :class:`convostore.BotStore`.

Each module needs its framework (an optional extra) and is imported only when asked for:

- :mod:`convostore.integrations.openai_agents`: ``ConvostoreSession``, the OpenAI Agents SDK's
  ``Session`` (``pip install "convostore[openai-agents]"``);
- :mod:`convostore.integrations.langchain`: ``ConvostoreChatMessageHistory``, LangChain's
  ``BaseChatMessageHistory`` (``pip install "convostore[langchain]"``).
"""
