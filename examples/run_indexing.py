#!/usr/bin/env python
"""Learn semantic IDs for a corpus: `accelerate launch examples/run_indexing.py --help`.

The same command as the installed `lmindexer-index`; its arguments and outputs are described in
`trainers/commands/index.py`.
"""

from trainers.commands.index import main


if __name__ == "__main__":
    main()
