"""Pictures of activations: f/f'/f'' plots (:mod:`~actsym.viz.plots`), the 2-D toy study
(:mod:`~actsym.viz.toy2d`) and its animations (:mod:`~actsym.viz.animate`). Needs matplotlib (Agg backend);
imported lazily by the CLI."""
