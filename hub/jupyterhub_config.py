"""JupyterHub settings of the course's hub (JupyterHub 6.1).

``hub/hub.py start`` runs ``jupyterhub -f hub/jupyterhub_config.py`` as
root with ``D2L_HUB_SETTINGS`` naming a JSON file of the machine's paths
and ports; nothing machine-specific is written here. What it sets up:

* PAM log-in (the system's accounts and passwords), for the hub's
  accounts only; no hub admin (the instructor's rights come from
  nbgrader, not from the hub);
* the local process spawner: each account's JupyterLab runs as that
  account, in its home folder, with the hub's environment first on PATH;
* configurable-http-proxy, installed with npm next to the settings;
* the hub's database, cookie secret and process ids next to the settings.
"""

import json
import os
from pathlib import Path

c = get_config()  # noqa: F821  (provided by JupyterHub)

settings = json.loads(Path(os.environ["D2L_HUB_SETTINGS"]).read_text())
state = Path(settings["state"])
venv = Path(settings["venv"])

c.JupyterHub.bind_url = f"http://{settings['ip']}:{settings['port']}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True       # stopping the hub stops them
c.JupyterHub.cleanup_proxy = True

c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set(settings["accounts"])
c.PAMAuthenticator.open_sessions = False

c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(venv / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.environment = {
    "PATH": os.pathsep.join([str(venv / "bin"), "/usr/local/bin",
                             "/usr/bin", "/bin"])}
# A JupyterLab starting on a busy machine can take a while.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180

c.ConfigurableHTTPProxy.command = [settings["proxy"]]
c.ConfigurableHTTPProxy.api_url = \
    f"http://127.0.0.1:{settings['proxy_api_port']}"
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")
