'	
hape