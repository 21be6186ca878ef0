"""lamp's Hydra launcher for Ray: ``lamp run -m ... hydra/launcher=ray`` runs each job of a sweep as a Ray task.

Hydra finds it in the ``hydra_plugins`` namespace package (installed with lamp; ``pip install 'lamp[ray]'`` adds
Ray itself). Options: :class:`hydra_plugins.lamp_ray_launcher.config.RayLauncherConf`.
"""
