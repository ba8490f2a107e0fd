exec("/usr/local/bin/cleanup", alert.labels.instance)
