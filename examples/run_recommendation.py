#!/usr/bin/env python
"""Sequential recommendation with semantic IDs: `accelerate launch examples/run_recommendation.py --help`.

The same command as the installed `lmindexer-recommend`; its arguments and outputs are described in
`trainers/commands/recommend.py`.
"""

from trainers.commands.recommend import main


if __name__ == "__main__":
    main()
