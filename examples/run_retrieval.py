#!/usr/bin/env python
"""Document retrieval and product search with semantic IDs: `accelerate launch examples/run_retrieval.py --help`.

The same command as the installed `lmindexer-retrieve`; its arguments and outputs are described in
`trainers/commands/retrieve.py`.
"""

from trainers.commands.retrieve import main


if __name__ == "__main__":
    main()
