from convostore.cli import run

run()
